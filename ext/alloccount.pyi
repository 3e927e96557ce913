from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

def count_allocations(fn: Callable[[], T]) -> tuple[int, T]: ...
