import IngestCore
import Testing

@testable import IngestWorker

@Suite("Worker configuration and retry policy")
struct WorkerConfigurationTests {
    private func reader(_ values: [String: String]) -> EnvironmentReader {
        EnvironmentReader(values) { _ in [] }
    }

    @Test func defaults() throws {
        let c = try WorkerConfiguration(environment: reader([:]), defaultWorkerID: "host-1")
        #expect(c.topics == TopicNaming().allTopics)
        #expect(c.handlers == ["noop"])
        #expect(c.storeURL == "sqlite:ingest-worker.sqlite")
        #expect(c.retentionMilliseconds == 96 * 3_600_000)
        #expect(c.retry.maxAttempts == 3)
        #expect(c.workerID == "host-1")
    }

    @Test func settingsAndMarkers() throws {
        let c = try WorkerConfiguration(
            environment: reader([
                "INGEST_TOPIC_PREFIX": "acme", "INGEST_WORKER_HANDLERS": "record, noop",
                "INGEST_STORE_URL": "postgres://u:p@db/ingest", "INGEST_DEDUP_RETENTION_HOURS": "24",
                "INGEST_RECORD_POISON_MARKER": "", "INGEST_KAFKA_CONSUMER_PROPERTIES": "fetch.wait.max.ms=50",
            ]),
            defaultWorkerID: "w"
        )
        #expect(c.topics.first == "acme.conversation")
        #expect(c.handlers == ["record", "noop"])
        #expect(c.retentionMilliseconds == 24 * 3_600_000)
        #expect(c.recordHandler.poisonMarker.isEmpty)
        #expect(c.consumerProperties == ["fetch.wait.max.ms": "50"])
    }

    @Test(
        arguments: [
            (["INGEST_WORKER_HANDLERS": "wait-time-analytics"], "known handlers"),
            (["INGEST_STORE_URL": "mysql://x"], "INGEST_STORE_URL"),
            (["INGEST_WORKER_CONCURRENCY": "0"], "INGEST_WORKER_CONCURRENCY"),
            (["INGEST_KAFKA_CONSUMER_PROPERTIES": "nonsense"], "INGEST_KAFKA_CONSUMER_PROPERTIES"),
        ] as [([String: String], String)]
    )
    func badSettingsNameTheVariable(values: [String: String], expected: String) {
        do {
            _ = try WorkerConfiguration(environment: reader(values), defaultWorkerID: "w")
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func backoffDoublesWithBoundedJitter() {
        var policy = RetryPolicy()
        policy.baseBackoffMilliseconds = 100
        #expect(policy.backoffMilliseconds(attempt: 1, random: 0.5) == 100)
        #expect(policy.backoffMilliseconds(attempt: 2, random: 0.5) == 200)
        #expect(policy.backoffMilliseconds(attempt: 3, random: 0.5) == 400)
        #expect(policy.backoffMilliseconds(attempt: 3, random: 0) == 200)
        #expect(policy.backoffMilliseconds(attempt: 3, random: 0.999) == 599)
        #expect(policy.backoffMilliseconds(attempt: 200, random: 0.5) > 0, "no overflow")
    }
}
