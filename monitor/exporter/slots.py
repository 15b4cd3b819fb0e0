"""Label slots: which model ids of a target may be ``model`` label values.

Contracts (the exporter's label bound, see ``monitor.exporter.exporter``):

- A target admits at most ``max_models`` distinct models, first come first
  served; ids longer than ``MAX_LABEL_LENGTH`` never. The empty id (the
  models probe) is always admitted and takes no slot.
- A refused id is counted once (``refused(target, count)`` is called when
  the count changes; at most ``MAX_REFUSED_TRACKED`` ids are remembered)
  and the first refusal per target is logged.
- A model keeps its slot until ``release``. A ``delist``-ed model keeps its
  slot until a newcomer needs one: then the oldest delisted model is
  evicted first (``evict(target, model)``, which must ``release`` it).
- Not locked: the exporter calls it with its own lock held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from monitor.catalog import MAX_MODEL_ID_LENGTH

log = logging.getLogger("nexomon.exporter")

MAX_LABEL_LENGTH = MAX_MODEL_ID_LENGTH  # one bound for stored, labelled and probed ids
DEFAULT_MAX_MODELS = 100  # docs/architecture.md's default, for a target observed before configure
# Refused ids are remembered to count them once; this caps that memory.
MAX_REFUSED_TRACKED = 100_000


class LabelSlots:
    """The bounded set of admitted model ids per target."""

    def __init__(
        self, *, evict: Callable[[str, str], None], refused: Callable[[str, int], None]
    ) -> None:
        self._evict = evict
        self._on_refused = refused
        self._max_models: dict[str, int] = {}
        self._admitted: dict[str, set[str]] = {}  # target -> models with a slot
        self._refused: dict[str, set[str]] = {}  # target -> ids left out
        self._warned: set[str] = set()
        # target -> delisted models still holding a slot, oldest first
        self._delisted: dict[str, dict[str, None]] = {}

    def configure(self, target: str, max_models: int) -> None:
        """Set the cap of a target. Lowering it evicts nobody already admitted."""
        self._max_models[target] = max_models

    def refused_count(self, target: str) -> int:
        return len(self._refused.get(target, ()))

    def admit(self, target: str, model: str) -> bool:
        """True when ``model`` may be a label value of ``target`` (it gets a slot)."""
        if model == "":  # the models probe
            return True
        admitted = self._admitted.setdefault(target, set())
        delisted = self._delisted.get(target, {})
        if model in admitted:
            delisted.pop(model, None)
            return True
        limit = self._max_models.get(target, DEFAULT_MAX_MODELS)
        if len(admitted) >= limit and delisted and len(model) <= MAX_LABEL_LENGTH:
            self._evict(target, next(iter(delisted)))
        if len(model) <= MAX_LABEL_LENGTH and len(admitted) < limit:
            admitted.add(model)
            return True
        refused = self._refused.setdefault(target, set())
        if model not in refused and len(refused) < MAX_REFUSED_TRACKED:
            refused.add(model)
            self._on_refused(target, len(refused))
        if target not in self._warned:
            self._warned.add(target)
            log.warning(
                "target %s: model ids beyond max_models=%d or longer than %d characters "
                "are left out of the metrics (first: %.60r); see nexomon_models_over_limit",
                target,
                limit,
                MAX_LABEL_LENGTH,
                model,
            )
        return False

    def delist(self, target: str, model: str) -> None:
        """``model`` left /models: it keeps its slot until a newcomer needs one."""
        self._delisted.setdefault(target, {})[model] = None

    def release(self, target: str, model: str) -> None:
        """Free the slot of ``model`` (and forget it was refused)."""
        self._delisted.get(target, {}).pop(model, None)
        self._admitted.get(target, set()).discard(model)
        refused = self._refused.get(target)
        if refused is not None and model in refused:
            refused.discard(model)
            self._on_refused(target, len(refused))

    def drop(self, target: str) -> None:
        """Forget everything about ``target`` (it left the config)."""
        for book in (self._max_models, self._admitted, self._refused, self._delisted):
            book.pop(target, None)
        self._warned.discard(target)
