import ArgumentParser
import Foundation
import IngestSpool

/// `ingestctl spool stats|verify|export`: read-only views of a gateway's spool directory.
struct Spool: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect a gateway spool directory (read-only; safe while the gateway runs).",
        subcommands: [Stats.self, Verify.self, Export.self]
    )

    struct Directory: ParsableArguments {
        @Option(help: "The spool directory (INGEST_SPOOL_DIR).")
        var dir: String = ProcessInfo.processInfo.environment["INGEST_SPOOL_DIR"] ?? "spool"
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Segments, sizes and records not yet in Kafka.")
        @OptionGroup var directory: Directory

        func run() throws {
            let r = SpoolInspector.scan(directory: directory.dir)
            print("segments: \(r.segments.count), bytes: \(r.segments.reduce(0) { $0 + $1.bytes })")
            print("acknowledged through: \(r.acknowledgedSequence), pending records: \(r.pendingRecords)")
            for s in r.segments {
                print(
                    "  \(s.name): \(s.records) records \(s.firstSequence.map(String.init) ?? "-")…\(s.lastSequence.map(String.init) ?? "-"), \(s.bytes) bytes"
                        + (s.badBytes > 0 ? ", \(s.badBytes) bad bytes" : "")
                )
            }
            if !r.quarantined.isEmpty { print("quarantined: \(r.quarantined.joined(separator: ", "))") }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every record's checksum; exits 1 when a segment holds bad bytes."
        )
        @OptionGroup var directory: Directory

        func run() throws {
            let r = SpoolInspector.scan(directory: directory.dir)
            let bad = r.segments.filter { $0.badBytes > 0 }
            for s in bad { print("\(s.name): \(s.badBytes) bytes are not valid records") }
            print("\(r.segments.reduce(0) { $0 + $1.records }) records in \(r.segments.count) segments checked")
            // The last segment may end in a torn record (the gateway cuts it off at start).
            if !bad.isEmpty { throw ExitCode(1) }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the records not yet acknowledged by Kafka as JSON lines (e.g. from a dead host's disk)."
        )
        @OptionGroup var directory: Directory

        func run() throws {
            _ = SpoolInspector.scan(directory: directory.dir) { print(SpoolInspector.jsonLine($0)) }
        }
    }
}
