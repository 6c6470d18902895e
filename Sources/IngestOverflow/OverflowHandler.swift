import Foundation
import IngestCore
import IngestWorker
import Logging
import ServiceLifecycle

/// The `overflow` handler: feeds detection signals to the controller — oWaiting and
/// oLongestWaiting from queue observation notifications, and the p90 wait of the analytics
/// worker's running interval summaries on `genesys.queue.metrics`. It changes nothing itself:
/// the controller verifies against the API before acting.
public struct OverflowHandler: EventHandler {
    public let name = "overflow"
    let controller: OverflowController
    let metricsTopic: String

    public init(controller: OverflowController, metricsTopic: String) {
        self.controller = controller
        self.metricsTopic = metricsTopic
    }

    public func accepts(_ event: WorkerEvent) -> Bool {
        if let topic = event.topicName {
            return topic.hasPrefix("v2.analytics.queues.") && topic.hasSuffix(".observations")
        }
        return event.record.topic == metricsTopic
    }

    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] {
        if event.record.topic == metricsTopic && event.topicName == nil {
            guard let summary = try? JSONValue.parse(Data(event.body)), let queue = summary["queueId"]?.stringValue
            else { throw .poison("not a queue metrics summary record") }
            if summary["final"] == .bool(false), let p90 = summary["waitMs"]?["p90"]?.numberValue {
                await controller.observe(
                    queueID: queue,
                    metric: .p90WaitSeconds,
                    value: p90 / 1000,
                    atMilliseconds: WallClock.nowMilliseconds()
                )
            }
            return []
        }
        let o: QueueObservation
        do { o = try QueueObservation.parse(event.body) } catch {
            throw .poison("overflow cannot read the observation: \(error)")
        }
        let time = o.timeMilliseconds > 0 ? o.timeMilliseconds : WallClock.nowMilliseconds()
        if let w = o.waiting {
            await controller.observe(queueID: o.queueID, metric: .waiting, value: w, atMilliseconds: time)
        }
        if let l = o.longestWaitingSeconds {
            await controller.observe(queueID: o.queueID, metric: .longestWaitingSeconds, value: l, atMilliseconds: time)
        }
        return []
    }
}

/// Re-checks every configured queue each `checkIntervalSeconds`: verifies detections,
/// watches active overflows for recovery, reverts, and resumes activations left by a crash.
public struct OverflowService: Service {
    let controller: OverflowController
    let logger: Logger

    public init(controller: OverflowController, logger: Logger) {
        self.controller = controller
        self.logger = logger
    }

    public func run() async throws {
        let controller = controller
        let interval = controller.configuration.checkIntervalSeconds
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await controller.reconcile()
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            }
        }
        logger.info("overflow controller stopped")
    }
}
