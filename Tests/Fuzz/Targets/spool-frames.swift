import IngestCore

/// The spool's frame decoder over arbitrary bytes (segment files are read back after crashes,
/// and from disks taken from dead hosts): a frame is a record, incomplete or corrupt, never a
/// trap; a decoded record re-encodes to exactly the bytes it came from.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    var offset = 0
    input.withUnsafeBytes { all in
        while offset < all.count {
            switch SpoolFrame.decode(UnsafeRawBufferPointer(rebasing: all[offset...])) {
            case .record(let r, let frameBytes):
                var again: [UInt8] = []
                SpoolFrame.encode(r, into: &again)
                check(again == Array(all[offset..<(offset + frameBytes)]), "a frame does not re-encode to itself")
                offset += frameBytes
            case .incomplete, .corrupt:
                offset += 1
            }
        }
    }
    return 0
}
