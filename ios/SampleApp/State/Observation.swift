import Foundation

/// Hands every change of a state value to any number of `AsyncStream`s: the observation the
/// state classes offer instead of Combine (which Linux lacks). A SwiftUI view model reads the
/// current value synchronously and iterates a stream for the changes (in a `.task`, or a `Task`
/// it cancels), so nothing here depends on SwiftUI or the Observation framework.
@MainActor
final class Broadcast<Value: Sendable> {
    private var streams: [UInt64: AsyncStream<Value>.Continuation] = [:]
    private var nextID: UInt64 = 0

    /// A stream that starts with `current` and then yields each value ``send(_:)`` is given, in
    /// order, none skipped; it ends when its iterating task is cancelled or the iteration stops.
    func stream(startingWith current: Value) -> AsyncStream<Value> {
        let id = nextID
        nextID += 1
        let (stream, continuation) = AsyncStream.makeStream(of: Value.self, bufferingPolicy: .unbounded)
        continuation.yield(current)
        continuation.onTermination = { [weak self] _ in
            Task { @MainActor [weak self] in self?.streams[id] = nil }
        }
        streams[id] = continuation
        return stream
    }

    func send(_ value: Value) {
        for continuation in streams.values { continuation.yield(value) }
    }

    /// Ends every stream (their `for await` loops finish).
    func finish() {
        let all = streams.values
        streams = [:]
        for continuation in all { continuation.finish() }
    }
}
