"""The grouping of waiting trials into populations, shared by the ``population`` and ``ray``
executors: the largest set of one shape first, a continued trial alone, the note given once."""
from tune_helpers import tiny

from polydl.tune.executors.base import TrialTask
from polydl.tune.executors.grouping import ALONE, Waiting, next_group, shape_key


def t(number, resume=False, **kw):
    return TrialTask(number, tiny(**kw).to_dict(), f"/x/{number:04d}", resume=resume)


def test_the_largest_group_of_one_shape_comes_first():
    pending = [t(0, hidden=[4]), t(1, hidden=[8], lr=0.1), t(2, hidden=[8], lr=0.2), t(3, hidden=[8])]
    group, alone = next_group(pending, 2)
    assert [x.number for x in group] == [1, 2] and alone is None
    assert shape_key(pending[1].config) == shape_key(pending[3].config) != shape_key(pending[0].config)
    group, alone = next_group([t(0, hidden=[4]), t(1, hidden=[8])], 4)
    assert [x.number for x in group] == [0] and alone == ALONE
    group, _ = next_group([t(0), t(1, resume=True), t(2)], 4)
    assert [x.number for x in group] == [1]


def test_waiting_trials_in_order_or_as_groups():
    one = Waiting()
    for n in range(3):
        one.add(t(n, hidden=[4 * (n + 1)]))
    assert [one.take()[0].number for _ in range(2)] == [0, 1] and len(one) == 1 and one.notes() == []
    groups = Waiting(4)
    for n in range(3):
        groups.add(t(n, hidden=[4 * (n + 1)]))
    assert [x.number for x in groups.take()] == [0] and [x.number for x in groups.take()] == [1]
    notes = groups.notes()
    assert [(e.number, e.kind, e.message) for e in notes] == [(0, "note", ALONE)] and groups.notes() == []
    assert [(e.number, e.kind, e.epoch) for e in groups.close()] == [(2, "interrupted", 0)] and not groups
