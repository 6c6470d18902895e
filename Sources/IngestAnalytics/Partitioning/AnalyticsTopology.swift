import IngestCore
import IngestKafka
import Logging

/// The start-up check of the co-partitioned topics: the waits topic (created here when
/// missing) and the observations topic must have the same partition count, or one queue's
/// waits and observations would be owned by different instances.
public enum AnalyticsTopology {
    /// The partition count both topics share; waits up to `waitSeconds` for the observations
    /// topic to exist (the gateway creates it at its start).
    public static func check(
        _ configuration: AnalyticsConfiguration,
        kafka: KafkaClientConfiguration,
        logger: Logger,
        waitSeconds: Int = 60
    ) async throws(ConfigurationError) -> Int32 {
        let admin: KafkaAdmin
        do { admin = try KafkaAdmin(configuration: kafka) } catch {
            throw ConfigurationError("cannot reach Kafka to check the analytics topics: \(error.message)")
        }
        let observations = configuration.observationsTopic
        let waits = configuration.waitsTopic
        var observationPartitions: Int32 = 0
        let deadline = ContinuousClock.now + .seconds(waitSeconds)
        while true {
            observationPartitions = (try? admin.partitionCount(topic: observations)) ?? 0
            if observationPartitions > 0 || ContinuousClock.now >= deadline { break }
            logger.info("waiting for the observations topic", metadata: ["kafka.topic": "\(observations)"])
            try? await Task.sleep(for: .seconds(2))
        }
        guard observationPartitions > 0 else {
            throw ConfigurationError(
                "topic \(observations) does not exist: start the gateway first (it creates the raw topics) or create it "
                    + "with `ingestctl topics create`"
            )
        }
        var waitPartitions = (try? admin.partitionCount(topic: waits)) ?? 0
        if waitPartitions == 0 {
            do {
                try admin.createTopics([.init(name: waits, partitions: observationPartitions)])
            } catch {
                throw ConfigurationError("cannot create \(waits): \(error.message)")
            }
            waitPartitions = (try? admin.partitionCount(topic: waits)) ?? 0
            logger.notice(
                "created the waits topic",
                metadata: ["kafka.topic": "\(waits)", "kafka.partitions": "\(waitPartitions)"]
            )
        }
        guard waitPartitions == observationPartitions else {
            throw ConfigurationError(
                "\(waits) has \(waitPartitions) partitions and \(observations) has \(observationPartitions): "
                    + "queue analytics needs both equal (one instance owns a queue's waits and observations); "
                    + "add partitions to the smaller one (kafka-topics --alter --partitions \(max(waitPartitions, observationPartitions))) "
                    + "or point INGEST_ANALYTICS_WAITS_TOPIC at a topic with \(observationPartitions)"
            )
        }
        return waitPartitions
    }
}
