import Foundation
import IngestCore
import Testing

@testable import IngestOverflow

@Suite("Overflow configuration: loops, capacity, settings planning")
struct OverflowConfigurationTests {
    func policy(_ id: String, name: String? = nil, overflowTo: [String] = [], perMinute: Double = 0) -> String {
        """
        {"queueId": "\(id)"\(name.map { ", \"name\": \"\($0)\"" } ?? ""),
         "detect": {"metric": "waiting", "above": 5},
         "verify": {"metric": "estimatedWaitSeconds", "above": 120},
         "recover": {"metric": "estimatedWaitSeconds", "below": 60, "holdSeconds": 60},
         "addMembers": ["u-1"], "overflowTo": \(overflowTo), "expectedOverflowPerMinute": \(perMinute)}
        """
    }

    func parse(_ queues: [String], targets: String = "{}") throws -> OverflowConfiguration {
        try OverflowConfiguration.parse(
            Data("{\"queues\": [\(queues.joined(separator: ","))], \"targets\": \(targets)}".utf8)
        )
    }

    func message(_ body: () throws -> Any) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return (error as? ConfigurationError)?.message ?? "\(error)"
        }
    }

    @Test func parsesAValidConfiguration() throws {
        let c = try parse(
            [policy("a", name: "Sales", overflowTo: ["t"], perMinute: 2)],
            targets:
                #"{"t": {"agents": 14, "baseLoadPerMinute": 1, "averageHandleSeconds": 180, "maxWaitSeconds": 60}}"#
        )
        #expect(c.queues.first?.label == "Sales (a)" && c.checkIntervalSeconds == 15 && !c.dryRun)
        #expect(c.overflowGraph == ["a": ["t"]])
    }

    @Test func rejectsALoopAndNamesIt() {
        let text = message {
            try parse([policy("a", name: "Sales", overflowTo: ["b"]), policy("b", name: "Support", overflowTo: ["a"])])
        }
        #expect(
            text.contains("loop: Sales → Support → Sales") || text.contains("loop: Support → Sales → Support"),
            "\(text)"
        )
    }

    @Test func loopsThroughConditionalGroupRoutingCountToo() {
        let a = """
            {"queueId": "a", "detect": {"metric": "waiting", "above": 5},
             "verify": {"metric": "waiting", "above": 5}, "recover": {"metric": "waiting", "below": 2},
             "settings": {"conditionalGroupRouting": {"rules": [{"queue": {"id": "b"}, "conditionValue": 60}]}}}
            """
        let text = message { try parse([a, policy("b", overflowTo: ["c"]), policy("c", overflowTo: ["a"])]) }
        #expect(text.contains("loop: a → b → c → a"), "\(text)")
    }

    @Test func rejectsATargetThatCannotAbsorbTheOverflow() {
        // 2 + 10 per minute × 300 s = 60 Erlangs on 5 agents.
        let overloaded = message {
            try parse(
                [policy("a", overflowTo: ["t"], perMinute: 10)],
                targets:
                    #"{"t": {"agents": 5, "baseLoadPerMinute": 2, "averageHandleSeconds": 300, "maxWaitSeconds": 60}}"#
            )
        }
        #expect(overloaded.contains("target queue t cannot absorb the overflow: 60.0 Erlangs offered to 5 agents"))
        // Utilisation 0.9: stable, but the simulated p90 wait is far above 20 s.
        let slow = message {
            try parse(
                [policy("a", overflowTo: ["t"], perMinute: 1)],
                targets:
                    #"{"t": {"agents": 4, "baseLoadPerMinute": 0.8, "averageHandleSeconds": 120, "maxWaitSeconds": 20}}"#
            )
        }
        #expect(
            slow.contains("would be overloaded: simulated p90 wait") && slow.contains("exceeds maxWaitSeconds 20"),
            "\(slow)"
        )
        let undescribed = message { try parse([policy("a", overflowTo: ["t"], perMinute: 1)]) }
        #expect(undescribed.contains("target queue t receives overflow but has no entry in 'targets'"))
    }

    @Test func rejectsIncompleteOrUnsafePolicies() {
        #expect(message { try parse([]) }.contains("has no queues"))
        #expect(message { try parse([policy("a"), policy("a")]) }.contains("configured twice"))
        let noAction = policy("a").replacingOccurrences(of: #""addMembers": ["u-1"], "#, with: "")
        #expect(message { try parse([noAction]) }.contains("has no action"))
        let missing = policy("a").replacingOccurrences(
            of: #""verify": {"metric": "estimatedWaitSeconds", "above": 120},"#,
            with: ""
        )
        #expect(
            message { try parse([missing]) }.contains("'verify' is missing at .queues[0]"),
            "\(message { try parse([missing]) })"
        )
        let flapping = policy("a").replacingOccurrences(of: #""below": 60"#, with: #""below": 200"#)
        #expect(message { try parse([flapping]) }.contains("it would flap"))
        #expect(message { try OverflowConfiguration.parse(Data("{nope".utf8)) }.contains("not valid JSON"))
    }

    @Test func loadSimulationAgreesWithQueueingTheory() {
        // M/M/1 at 50 % load with a 60 s mean handle time: mean wait ρ/(μ−λ) = 60 s.
        let r = LoadSimulation.run(arrivalsPerMinute: 0.5, agents: 1, averageHandleSeconds: 60, hours: 400)
        #expect(r.utilization == 0.5)
        #expect(abs(r.meanWaitSeconds - 60) < 8, "\(r.meanWaitSeconds)")
        #expect(LoadSimulation.run(arrivalsPerMinute: 2, agents: 1, averageHandleSeconds: 60).utilization >= 1)
    }

    @Test func revertRestoresOnlyWhatStillHoldsOurValues() {
        let ours: JSONValue = .object(["rules": .array([.object(["queue": .object(["id": .string("t")])])])])
        let change = OverflowActivation.SettingsChange(
            baselineDateModified: "d1",
            originals: ["conditionalGroupRouting": .object(["rules": .array([])]), "skillEvaluationMethod": nil],
            applied: ["conditionalGroupRouting": ours, "skillEvaluationMethod": .string("ALL")]
        )
        // Both still ours: both restored (the absent one removed).
        let untouched = OverflowSettingsPlanner.revert(
            change,
            current: ["conditionalGroupRouting": ours, "skillEvaluationMethod": .string("ALL"), "name": .string("Q")]
        )
        #expect(untouched.keptHumanChanges.isEmpty)
        #expect(untouched.restore["conditionalGroupRouting"] == .some(.object(["rules": .array([])])))
        #expect(untouched.restore["skillEvaluationMethod"] == .some(nil))
        let restored = OverflowSettingsPlanner.applying(
            untouched.restore,
            to: ["conditionalGroupRouting": ours, "skillEvaluationMethod": .string("ALL"), "name": .string("Q")]
        )
        #expect(restored == ["conditionalGroupRouting": .object(["rules": .array([])]), "name": .string("Q")])
        // A human changed one field: it is kept and reported; the other is restored.
        let human = OverflowSettingsPlanner.revert(
            change,
            current: [
                "conditionalGroupRouting": .object(["rules": .array([])]), "skillEvaluationMethod": .string("BEST"),
            ]
        )
        #expect(human.keptHumanChanges == ["skillEvaluationMethod"])
        #expect(human.restore.isEmpty, "conditionalGroupRouting already holds the original")
    }

    @Test func activationKeepsASummaryWhenItFinishes() {
        var a = OverflowActivation(queueID: "q")
        a.begin(activationID: "act-1", dryRun: false, now: 1000)
        #expect(a.state == .verifying && a.detectedAt == 1000)
        a.move(to: .active, now: 2000)
        a.plannedMembers = ["u-1"]
        a.membersAdded = true
        a.finish(outcome: "reverted", now: 5000)
        #expect(a.state == .idle && a.activationID == nil && a.plannedMembers == nil)
        #expect(a.lastActivation?.activationID == "act-1" && a.lastActivation?.activatedAt == 2000)
        #expect(a.lastActivation?.addedMembers == ["u-1"])
    }

    /// Found by the SIGKILL-in-verifying test: a redelivered notification (its claim was not
    /// completed before the kill) arrived after the activation ended and started a second one,
    /// because finishing forgot which signal had started the first.
    @Test func theTriggeringSignalSurvivesTheEndOfTheActivation() {
        var a = OverflowActivation(queueID: "q")
        a.begin(activationID: "act-1", dryRun: false, now: 1000, signalAt: 900)
        a.finish(outcome: "reverted", now: 5000)
        #expect(a.triggerSignalAt == 900)
        a.begin(activationID: "act-2", dryRun: false, now: 6000)
        #expect(a.triggerSignalAt == 900, "a trigger without a signal time keeps the last one")
        a.begin(activationID: "act-3", dryRun: false, now: 7000, signalAt: 6500)
        #expect(a.triggerSignalAt == 6500)
    }
}
