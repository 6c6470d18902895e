import ArgumentParser
import Foundation
import IngestCore
import IngestOverflow
import IngestStore

/// `ingestctl overflow`: the overflow controller's state per queue, and configuration checks.
struct Overflow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect the queue overflow controller and validate its configuration.",
        subcommands: [Status.self, Validate.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each queue's overflow state, its activation and what it changed."
        )
        @Option(help: "The workers' store (INGEST_STORE_URL): sqlite:<path> or postgres://…")
        var store: String = ProcessInfo.processInfo.environment["INGEST_STORE_URL"] ?? "sqlite:ingest-worker.sqlite"
        @Option(help: "PostgreSQL schema (INGEST_STORE_SCHEMA).")
        var schema: String = ProcessInfo.processInfo.environment["INGEST_STORE_SCHEMA"] ?? "public"
        @Flag(help: "Print the state documents as JSON lines.") var json = false

        func run() async throws {
            let documents: any DocumentStore
            if store.hasPrefix("sqlite:") {
                documents = try SQLiteIdempotencyStore(path: String(store.dropFirst("sqlite:".count)))
            } else if store.hasPrefix("postgres://") || store.hasPrefix("postgresql://") {
                documents = try PostgresIdempotencyStore(url: store, schema: schema)
            } else {
                throw ValidationError("--store must be sqlite:<path> or postgres://…")
            }
            let states = try await documents.documents(kind: "overflow")
            if states.isEmpty {
                print("no queue has had an overflow activation yet")
                return
            }
            let now = WallClock.nowMilliseconds()
            for document in states {
                if json {
                    print(document.body)
                    continue
                }
                guard
                    let record = try? JSONDecoder().decode(OverflowActivation.self, from: Data(document.body.utf8))
                else {
                    print("\(document.key): unreadable state document (version \(document.version))")
                    continue
                }
                let since = (now - record.stateSince) / 1000
                let lease =
                    record.state == .idle
                    ? "" : document.leaseUntil > now ? " (driven by \(document.owner))" : " (lease free)"
                print("\(record.queueID): \(record.state.rawValue) for \(since) s\(lease)")
                if let id = record.activationID {
                    print("  activation \(id)\(record.dryRun ? " (dry run)" : "")")
                }
                if let planned = record.plannedMembers, !planned.isEmpty {
                    let state = record.membersRemoved ? "removed again" : record.membersAdded ? "added" : "planned"
                    print("  members \(state): \(planned.joined(separator: ", "))")
                }
                if let s = record.settings {
                    let state = s.revertDone ? "restored" : s.appliedDone ? "applied" : "planned"
                    print("  settings \(state): \(s.applied.keys.sorted().joined(separator: ", "))")
                }
                for note in record.notes { print("  note: \(note)") }
                if let last = record.lastActivation {
                    print(
                        "  last activation \(last.activationID): \(last.outcome); members \(last.addedMembers.count), "
                            + "fields \(last.changedFields.joined(separator: ", "))"
                    )
                    for note in last.notes { print("    note: \(note)") }
                }
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an overflow configuration: loops between queues and target capacity."
        )
        @Option(help: "The JSON configuration file.") var config: String

        func run() throws {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: config)) } catch {
                throw ValidationError("cannot read \(config): \(error.localizedDescription)")
            }
            do {
                let parsed = try OverflowConfiguration.parse(data)
                print("\(config): valid — \(parsed.queues.count) queue(s)")
                for (target, capacity) in parsed.targets.sorted(by: { $0.key < $1.key }) {
                    let inflow = parsed.queues.filter { (parsed.overflowGraph[$0.queueId] ?? []).contains(target) }
                        .reduce(0) { $0 + $1.expectedOverflowPerMinute }
                    let r = LoadSimulation.run(
                        arrivalsPerMinute: capacity.baseLoadPerMinute + inflow,
                        agents: capacity.agents,
                        averageHandleSeconds: capacity.averageHandleSeconds
                    )
                    print(
                        "  target \(target): "
                            + String(
                                format:
                                    "%.1f/min on %d agents, utilisation %.0f %%, simulated p90 wait %.0f s (max %.0f s)",
                                capacity.baseLoadPerMinute + inflow,
                                capacity.agents,
                                r.utilization * 100,
                                r.p90WaitSeconds,
                                capacity.maxWaitSeconds
                            )
                    )
                }
            } catch {
                throw ValidationError(error.message)
            }
        }
    }
}
