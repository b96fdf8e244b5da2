import Dispatch
import Foundation

/// Runs `body` over `items` on `workers` threads, each taking the next item when free; results
/// come back in the items' order.
public enum Parallel {
    public static func map<Item: Sendable, Result: Sendable>(
        _ items: [Item], workers: Int = 2, _ body: @escaping @Sendable (Item) -> Result
    ) -> [Result] {
        let box = Box<Result>(count: items.count)
        DispatchQueue.concurrentPerform(iterations: max(1, min(workers, items.count))) { _ in
            while let index = box.next() {
                let result = body(items[index])
                box.set(index, result)
            }
        }
        return box.results.map { $0! }
    }

    private final class Box<Result>: @unchecked Sendable {
        private let lock = NSLock()
        private var cursor = 0
        private let count: Int
        var results: [Result?]

        init(count: Int) {
            self.count = count
            results = Array(repeating: nil, count: count)
        }

        func next() -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard cursor < count else { return nil }
            cursor += 1
            return cursor - 1
        }

        func set(_ index: Int, _ result: Result) {
            lock.lock()
            results[index] = result
            lock.unlock()
        }
    }
}

/// Wall-clock seconds of a block, for the figures the sweeps print.
public func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = DispatchTime.now()
    let value = try body()
    return (value, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
}
