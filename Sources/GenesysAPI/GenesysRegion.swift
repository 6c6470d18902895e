/// Genesys Cloud regions and their API hosts. The OAuth host is the API host with `api.`
/// replaced by `login.`.
public enum GenesysRegion {
    public static let apiHosts: [String: String] = [
        "us-east-1": "api.mypurecloud.com",
        "us-west-2": "api.usw2.pure.cloud",
        "ca-central-1": "api.cac1.pure.cloud",
        "sa-east-1": "api.sae1.pure.cloud",
        "eu-west-1": "api.mypurecloud.ie",
        "eu-west-2": "api.euw2.pure.cloud",
        "eu-central-1": "api.mypurecloud.de",
        "eu-central-2": "api.euc2.pure.cloud",
        "me-central-1": "api.mec1.pure.cloud",
        "ap-south-1": "api.aps1.pure.cloud",
        "ap-southeast-2": "api.mypurecloud.com.au",
        "ap-northeast-1": "api.mypurecloud.jp",
        "ap-northeast-2": "api.apne2.pure.cloud",
        "ap-northeast-3": "api.apne3.pure.cloud",
        "ap-southeast-1": "api.apse1.pure.cloud",
        "mx-central-1": "api.mxc1.pure.cloud",
        "us-east-2": "api.use2.us-gov-pure.cloud",
    ]

    /// `https://api.<host>` and `https://login.<host>` for a region name.
    public static func baseURLs(region: String) -> (api: String, login: String)? {
        guard let host = apiHosts[region] else { return nil }
        return ("https://" + host, "https://" + loginHost(forAPIHost: host))
    }

    public static func loginHost(forAPIHost host: String) -> String {
        host.hasPrefix("api.") ? "login." + host.dropFirst(4) : host
    }
}
