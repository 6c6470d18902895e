import Foundation
import Testing

@testable import IngestWebSocket

/// Server frames as a server would write them (unmasked).
func serverFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | opcode]
    if payload.count < 126 {
        out.append(UInt8(payload.count))
    } else if payload.count <= 0xFFFF {
        out += [126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        out.append(127)
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: payload.count >> shift))
        }
    }
    return out + payload
}

@Suite("WebSocket codec: frames, messages, handshake")
struct WebSocketCodecTests {
    @Test func framesOfEverySizeDecodeWhateverTheSplit() throws {
        for size in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let wire = serverFrame(0x2, payload)
            // Whole, and one byte at a time.
            var whole = WebSocketFrameDecoder()
            whole.append(wire)
            #expect(try whole.next() == WebSocketFrame(opcode: .binary, payload: payload))
            #expect(try whole.next() == nil)
            if size <= 1000 {
                var split = WebSocketFrameDecoder()
                var frames: [WebSocketFrame] = []
                for b in wire {
                    split.append([b])
                    if let f = try split.next() { frames.append(f) }
                }
                #expect(frames == [WebSocketFrame(opcode: .binary, payload: payload)])
            }
        }
    }

    @Test func clientFramesAreMaskedAndRoundTrip() throws {
        let payload = Array("hello, Genesys".utf8) + [UInt8](repeating: 7, count: 70_000)
        let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        let wire = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, payload: payload), maskKey: key)
        #expect(wire[1] & 0x80 != 0, "the mask bit is set")
        #expect(wire[1] & 0x7F == 127 && Array(wire[10..<14]) == key)
        let unmasked = wire[14...].enumerated().map { $0.element ^ key[$0.offset & 3] }
        #expect(unmasked == payload)
    }

    @Test func hostileFramesAreErrorsWithTheRightCloseCode() {
        func failure(_ bytes: [UInt8], maxFrame: Int = 1 << 20) -> WebSocketProtocolError? {
            var d = WebSocketFrameDecoder(maxFramePayload: maxFrame)
            d.append(bytes)
            do {
                _ = try d.next()
                return nil
            } catch { return error }
        }
        #expect(failure([0xC1, 0x00]) == .reservedBitsSet)
        #expect(failure([0x83, 0x00]) == .unknownOpcode(3))
        #expect(failure([0x81, 0x80, 1, 2, 3, 4]) == .maskedFrameFromServer)
        #expect(failure([0x09, 0x00]) == .fragmentedControlFrame)
        #expect(failure([0x89, 126, 0, 126] + [UInt8](repeating: 0, count: 126)) == .controlFrameTooLong(126))
        #expect(failure([0x82, 126, 0, 5]) == .nonMinimalLength)
        #expect(failure([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]) == .lengthTooLarge)
        // A huge declared length is refused before any allocation.
        #expect(failure([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]) == .frameTooLarge(limit: 1 << 20))
        #expect(WebSocketProtocolError.frameTooLarge(limit: 1).closeCode == 1009)
        #expect(WebSocketProtocolError.invalidUTF8.closeCode == 1007)
        #expect(WebSocketProtocolError.reservedBitsSet.closeCode == 1002)
    }

    @Test func fragmentsJoinControlFramesInterleaveAndTextMustBeUTF8() throws {
        var a = WebSocketMessageAssembler()
        #expect(try a.push(WebSocketFrame(fin: false, opcode: .text, payload: Array("Hel".utf8))) == nil)
        #expect(try a.push(WebSocketFrame(opcode: .ping, payload: [1])) == .ping([1]))
        #expect(try a.push(WebSocketFrame(fin: false, opcode: .continuation, payload: Array("lo ".utf8))) == nil)
        // "é" split across two fragments is fine: validation is per message.
        let e = Array("é".utf8)
        #expect(try a.push(WebSocketFrame(fin: false, opcode: .continuation, payload: [e[0]])) == nil)
        #expect(try a.push(WebSocketFrame(opcode: .continuation, payload: [e[1]])) == .text("Hello é"))
        #expect(throws: WebSocketProtocolError.unexpectedContinuation) {
            try a.push(WebSocketFrame(opcode: .continuation, payload: []))
        }
        #expect(throws: WebSocketProtocolError.invalidUTF8) {
            try a.push(WebSocketFrame(opcode: .text, payload: [0xC3]))
        }
        var b = WebSocketMessageAssembler(maxMessageBytes: 4)
        _ = try b.push(WebSocketFrame(fin: false, opcode: .binary, payload: [1, 2, 3]))
        #expect(throws: WebSocketProtocolError.expectedContinuation) {
            try b.push(WebSocketFrame(opcode: .text, payload: []))
        }
        #expect(throws: WebSocketProtocolError.messageTooLarge(limit: 4)) {
            try b.push(WebSocketFrame(opcode: .continuation, payload: [4, 5]))
        }
    }

    @Test func closeFramesAreValidated() throws {
        var a = WebSocketMessageAssembler()
        #expect(try a.push(WebSocketFrame(opcode: .close, payload: [])) == .close(code: 1005, reason: ""))
        #expect(
            try a.push(WebSocketFrame(opcode: .close, payload: [0x03, 0xE8] + Array("bye".utf8)))
                == .close(code: 1000, reason: "bye")
        )
        #expect(throws: WebSocketProtocolError.invalidClosePayload) {
            try a.push(WebSocketFrame(opcode: .close, payload: [0x03]))
        }
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            #expect(throws: WebSocketProtocolError.invalidCloseCode(code)) {
                try a.push(WebSocketFrame(opcode: .close, payload: [UInt8(code >> 8), UInt8(code & 0xFF)]))
            }
        }
        let long = String(repeating: "é", count: 100)
        let payload = WebSocketFrameEncoder.closePayload(code: 1001, reason: long)
        #expect(payload.count <= 125)
        #expect(String(validating: payload[2...], as: UTF8.self) != nil, "never cut inside a character")
    }

    @Test func handshakeAcceptsOnlyAMatchingUpgrade() throws {
        // RFC 6455 §1.3's example key and accept value.
        #expect(WebSocketHandshake.acceptValue(for: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        let handshake = WebSocketHandshake(key: "dGhlIHNhbXBsZSBub25jZQ==")
        let request = String(
            decoding: handshake.request(host: "streaming.example:443", path: "/channels/abc"),
            as: UTF8.self
        )
        #expect(request.hasPrefix("GET /channels/abc HTTP/1.1\r\nHost: streaming.example:443\r\n"))
        #expect(request.contains("Sec-WebSocket-Version: 13\r\n") && request.hasSuffix("\r\n\r\n"))
        let good = Array(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .utf8
        )
        #expect(try handshake.validateResponse(Array(good.dropLast(1))) == nil, "incomplete")
        #expect(try handshake.validateResponse(good + [0x81, 0x00]) == good.count, "frames may follow the head")
        let wrongKey = String(decoding: good, as: UTF8.self).replacingOccurrences(of: "s3pP", with: "AAAA")
        #expect(throws: WebSocketHandshake.Failure.badAccept) { try handshake.validateResponse(Array(wrongKey.utf8)) }
        #expect(throws: WebSocketHandshake.Failure.notUpgraded(status: 404, reason: "Not Found")) {
            try handshake.validateResponse(Array("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".utf8))
        }
        let deflate =
            String(decoding: good.dropLast(2), as: UTF8.self) + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        #expect(throws: WebSocketHandshake.Failure.unexpectedExtension("permessage-deflate")) {
            try handshake.validateResponse(Array(deflate.utf8))
        }
        #expect(throws: WebSocketHandshake.Failure.headTooLarge) {
            try handshake.validateResponse([UInt8](repeating: 65, count: 17 << 10))
        }
    }

    @Test func urlsMapToTheStreamAndTheRequestTarget() throws {
        let u = try #require(WebSocketURL("wss://streaming.mypurecloud.com/channels/abc?x=1"))
        #expect(u.streamURL == "https://streaming.mypurecloud.com" && u.path == "/channels/abc?x=1")
        let v = try #require(WebSocketURL("ws://127.0.0.1:9001"))
        #expect(v.streamURL == "http://127.0.0.1:9001" && v.path == "/" && v.hostHeader == "127.0.0.1:9001")
        #expect(
            WebSocketURL("https://x/") == nil && WebSocketURL("ws://user@x/") == nil && WebSocketURL("ws:///p") == nil
        )
    }
}
