import IngestKafka

/// Which queues this instance owns: those whose id hashes to a partition of the waits topic
/// assigned to it. Queue observations are co-partitioned with the waits (same key, same
/// partition count, same partitioner), so the owner of partition *p* sees every wait and every
/// observation of the queues of *p*, alone. A pure value type, confined to the engine actor.
///
/// Eager rebalances (`range`, which co-partitioning needs) revoke every partition and then
/// assign the next set: partitions revoked are *parked* (kept, not exported) until that
/// assignment, so those that come back keep their state without a rebuild. Nobody else can
/// have owned them in between: in an eager rebalance every member gives up everything before
/// any member is given anything.
struct QueueOwnership: Sendable, Equatable {
    let waitsTopic: String
    let partitionCount: Int32
    private(set) var owned: Set<Int32> = []
    private(set) var parked: Set<Int32> = []

    /// What an assignment change means for the engine's state.
    struct Change: Sendable, Equatable {
        /// Newly owned: rebuild their queues from the store.
        var gained: Set<Int32> = []
        /// Owned again after being parked: state kept, alerts restored.
        var resumed: Set<Int32> = []
        /// Parked: stop exporting and evaluating; keep the state.
        var parked: Set<Int32> = []
        /// Gone: forget their queues.
        var dropped: Set<Int32> = []
    }

    init(waitsTopic: String, partitionCount: Int32) {
        self.waitsTopic = waitsTopic
        self.partitionCount = partitionCount
    }

    /// The waits partition (and observations partition) of `queueID`.
    func partition(of queueID: String) -> Int32 {
        KafkaPartitioner.partition(key: queueID.utf8, partitionCount: partitionCount)
    }

    /// Whether waits of `queueID` are kept (owned or parked).
    func holds(_ queueID: String) -> Bool {
        let p = partition(of: queueID)
        return owned.contains(p) || parked.contains(p)
    }

    /// Whether `queueID`'s figures are exported, evaluated and published here.
    func exports(_ queueID: String) -> Bool { owned.contains(partition(of: queueID)) }

    mutating func apply(_ event: RebalanceEvent) -> Change {
        let mine = Set(event.partitions.filter { $0.topic == waitsTopic }.map(\.partition))
        var change = Change()
        switch (event.kind, event.incremental) {
        case (.revoked, false):
            change.dropped = parked  // a second revocation without an assignment between
            parked = owned
            change.parked = owned
            owned = []
        case (.revoked, true):
            change.dropped = owned.intersection(mine)
            owned.subtract(mine)
        case (.assigned, false):
            change.dropped = parked.subtracting(mine)
            change.resumed = parked.intersection(mine)
            change.gained = mine.subtracting(parked).subtracting(owned)
            owned.formUnion(mine)
            parked = []
        case (.assigned, true):
            change.gained = mine.subtracting(owned)
            owned.formUnion(mine)
        }
        return change
    }
}
