"""Collectors shared by the market tests: a lineage stand-in and a feed handler that counts."""

CAPTURE = "futures/um/stream/btcusdt_20240808.gz"


class Collect:
    """Anything with `.append(record)` can take lineage records."""

    def __init__(self):
        self.records = []

    def append(self, rec):
        self.records.append(rec)


class Handler:
    def __init__(self):
        self.status = []  # (status, reason) in arrival order
        self.books = 0
        self.trades = 0

    @property
    def statuses(self):
        return [s for s, _ in self.status]

    def on_trade(self, symbol, ts_ns, price, qty, buyer_is_maker):
        self.trades += 1

    def on_mark(self, *a):
        pass

    def on_book(self, symbol, ts_ns, book):
        self.books += 1

    def on_status(self, symbol, status, reason):
        self.status.append((status, reason))
