/// One account to move from cluster `from` to cluster `to` (a line of `new-schema.txt`).
public struct AccountMove: Hashable, Sendable {
    public var account: AccountID
    public var from: String
    public var to: String

    public init(account: AccountID, from: String, to: String) {
        self.account = account
        self.from = from
        self.to = to
    }
}
