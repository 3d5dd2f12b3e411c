"""The registry's promotion: the gate that compares a candidate with the active version on the
frozen test set, promotion (`--force` skips the comparison, never the validation) and rollback.

Mixed into `models.registry.Registry`, whose pointer, cards and folders it uses; each step is one
compare-and-swap of the pointer (models.pointer), so a retry re-decides against whatever version
is active by then.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from models.card import ModelCard
from models.errors import RegistryError
from models.pointer import RegistryState, version_number
from models.versions import PromotionResult, validate_folder

# The registry's log, whichever of its modules writes.
log = logging.getLogger("models.registry")


class Promotion:
    def _gate(self, card: ModelCard, active: str | None, force: bool) -> tuple[bool, str]:
        if active is None:
            return True, "no version was active"
        try:
            active_card = self.card(active)
        except RegistryError as exc:
            return True, f"the active version {active} is unreadable ({exc}); replacing it"
        new, old = card.test_macro_f1, active_card.test_macro_f1
        if new is None:
            verdict = False, f"{card.version} has no test_macro_f1 metric to compare"
        elif old is None:
            verdict = True, f"the active version {active} has no test_macro_f1 metric"
        elif new + self.margin < old - 1e-12:
            shortfall = (
                f"test macro-F1 {new:.4f} is lower than the active {active}'s {old:.4f} "
                f"by more than the margin {self.margin:.4f}"
            )
            verdict = False, shortfall
        else:
            verdict = (
                True,
                f"test macro-F1 {new:.4f} vs the active {active}'s {old:.4f} (margin {self.margin:.4f})",
            )
        if force and not verdict[0]:
            return True, f"forced: {verdict[1]}"
        return verdict

    def promote(self, version: str, *, force: bool = False) -> PromotionResult:
        """Make `version` active if it does not lose to the active one on the frozen test set by more
        than the margin (`force` skips the comparison, never the validation)."""
        version_number(version)
        if version not in (self._state().registered or []):
            raise RegistryError(f"no version {version!r} in {self.location}")
        card = validate_folder(self.version_dir(version), expect_version=version)

        def edit(state: RegistryState) -> tuple[bool, PromotionResult]:
            if version not in (state.registered or []):
                raise RegistryError(f"version {version} was pruned from {self.location} meanwhile")
            previous = state.active
            if previous == version:
                return False, PromotionResult(False, f"{version} is already active", previous)
            ok, reason = self._gate(card, previous, force)
            if not ok:
                state.refused[version] = reason
                return True, PromotionResult(False, reason, previous)
            if previous is not None:
                state.history = [v for v in state.history if v != previous] + [previous]
            state.history = [v for v in state.history if v != version]
            state.active = version
            state.refused.pop(version, None)
            state.retired = [v for v in state.retired if v != version]
            if previous is not None and previous not in state.retired:
                state.retired.append(previous)
            state.promoted_at[version] = datetime.now(UTC).isoformat()
            return True, PromotionResult(True, reason, previous)

        result = self._switch(edit, step="promote")
        if result.promoted:
            self.checkpoint("promote:switched")
            log.info("promoted model %s (previous %s): %s", version, result.previous, result.reason)
            self._prune()
        elif result.previous != version:
            log.warning("promotion of %s refused: %s", version, result.reason)
        self.sync_catalog()
        return result

    def rollback(self) -> str:
        """Reactivate the previously active version; returns it."""
        state = self._state()
        if not state.history:
            raise RegistryError(f"no previous version to roll back to in {self.location}")
        validate_folder(self.version_dir(state.history[-1]), expect_version=state.history[-1])

        def edit(state: RegistryState) -> tuple[bool, tuple[str | None, str]]:
            if not state.history:
                raise RegistryError(f"no previous version to roll back to in {self.location}")
            target = state.history.pop()
            current = state.active
            state.active = target
            state.retired = [v for v in state.retired if v != target]
            if current is not None and current not in state.retired:
                state.retired.append(current)
            state.promoted_at[target] = datetime.now(UTC).isoformat()
            return True, (current, target)

        current, target = self._switch(edit, step="rollback")
        self.checkpoint("rollback:switched")
        log.info("rolled back from %s to %s", current, target)
        self.sync_catalog()
        return target
