#!/usr/bin/env python3
"""One mutant of the daemon's core per sequence its unit tests drive (src/daemon/core/tests.rs), and a check that
each is caught: the mutant is written into the source, the sequence's test is run, and it must fail. The source is
restored after each, whatever happens. Not part of the test suite (each mutant rebuilds the library's tests, about
two minutes on two cores); run it after changing the core:

    python3 tests/mutants/run.py            # every mutant
    python3 tests/mutants/run.py late_roi   # one

Exit status 0 when every mutant was caught."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = "src/daemon/core/mod.rs"

# name: (file, original text, mutant text, the test that must catch it)
MUTANTS = {
    # a ROI for a series nobody answered yet is dropped instead of given to the assembler
    "late_roi": (
        CORE,
        "(None, None) => self.assembler.add_roi(roi, r),",
        "(None, None) => drop((roi, r)),",
        "a_series_waits_for_a_late_roi_then_is_computed_with_it",
    ),
    # the ROIs that arrived during the compute are not weighed once the answer is committed
    "revision_during_compute": (
        CORE,
        "self.revise_awaiting(&h.record);",
        "let _ = &h.record;",
        "a_newer_roi_that_arrives_during_the_compute_is_applied_after_the_answer",
    ),
    # the answer ignores an LN read that arrived before its images
    "ln_read_before_images": (
        CORE,
        ".ln_reads\n                    .get(&study_key)\n                    .copied()",
        ".ln_reads\n                    .get(&study_key)\n                    .copied()\n                    .filter(|_| false)",
        "an_ln_read_before_the_images_is_kept_and_used_by_the_answer",
    ),
    # a restart does not take back the LN reads kept in the store
    "restart_forgets_pending_reads": (
        CORE,
        "core.ln_reads.insert(k.clone(), *v);",
        "let _ = (k, v);",
        "a_restart_keeps_the_ln_read_recomputes_what_was_in_flight_and_refuses_what_was_answered",
    ),
    # a result refused by a full spool is dropped instead of held
    "full_spool_drops": (
        CORE,
        "Ok(Push::Full(why)) => {\n                    self.held.push_front(h);",
        "Ok(Push::Full(why)) => {\n                    drop(h);",
        "a_full_spool_holds_the_result_with_one_alarm_and_stops_new_computes_until_there_is_room",
    ),
    # an LN read for a retired study waits for ever instead of being reported
    "retired_study_read_waits": (
        CORE,
        "if records.is_empty() && self.store.ledger().study_retired(&key, &sha) {",
        "if records.is_empty() && self.store.ledger().study_retired(&key, &sha) && false {",
        "an_answer_past_the_retention_stays_refused_but_takes_no_ln_update",
    ),
    # a fault of ours (a panic) sends the examination to quarantine as bad input would
    "own_fault_quarantined": (
        CORE,
        "Err(e) if e.is_own_fault() => self.own_fault(ready, &e, &study_key, &series_key, tried),",
        "Err(e) if e.is_own_fault() && false => self.own_fault(ready, &e, &study_key, &series_key, tried),",
        "a_fault_of_ours_is_retried_with_an_alarm_and_never_moves_the_examination",
    ),
}


def run(name):
    path, original, mutant, test = MUTANTS[name]
    f = ROOT / path
    text = f.read_text()
    if text.count(original) != 1:
        print(f"{name}: the original text is not in {path} exactly once; update this script")
        return False
    try:
        f.write_text(text.replace(original, mutant))
        r = subprocess.run(
            ["cargo", "test", "--release", "--lib", f"daemon::core::tests::{test}", "--", "--exact"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        f.write_text(text)
    built = "test result:" in r.stdout
    caught = built and r.returncode != 0 and "1 failed" in r.stdout
    print(f"{name}: {'caught' if caught else 'NOT CAUGHT' if built else 'did not build'} by {test}")
    if not built:
        print(r.stderr[-2000:])
    return caught


if __name__ == "__main__":
    names = sys.argv[1:] or list(MUTANTS)
    results = [run(n) for n in names]
    sys.exit(0 if all(results) else 1)
