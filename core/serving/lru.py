"""An async cache that loads each value once and evicts least recently used beyond a budget."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LoadingLRU(Generic[K, V]):
    """Values by key, each loaded once on a thread however many callers ask at the same time.

    Past ``budget`` (summed ``size`` of the values) the least recently used values are evicted
    and handed to ``on_evict``; the value just loaded always stays, even alone over budget.
    A failed load is not remembered: every waiter gets its error and the next call tries again.
    """

    def __init__(
        self,
        budget: int,
        size: Callable[[V], int],
        on_evict: Callable[[V], None] = lambda _: None,
    ) -> None:
        self.budget = budget
        self._size = size
        self._on_evict = on_evict
        self._items: OrderedDict[K, V] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def values(self) -> list[V]:
        return list(self._items.values())

    async def get(self, key: K, load: Callable[[], V]) -> V:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(load))
            self._loading[key] = task
            task.add_done_callback(lambda done: self._loaded(key, done))
        # A caller that gives up (cancelled) must not cancel the load the others wait for.
        return await asyncio.shield(task)

    def evict(self, key: K) -> None:
        if key in self._items:
            self._on_evict(self._items.pop(key))

    def clear(self) -> None:
        for key in list(self._items):
            self.evict(key)

    def _loaded(self, key: K, task: asyncio.Future[V]) -> None:
        del self._loading[key]
        if task.cancelled() or task.exception() is not None:
            return
        self._items[key] = task.result()
        used = sum(self._size(v) for v in self._items.values())
        while used > self.budget and len(self._items) > 1:
            _, oldest = self._items.popitem(last=False)
            used -= self._size(oldest)
            self._on_evict(oldest)
