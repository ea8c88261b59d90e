"""Live panels: job progress that refreshes itself while a job runs."""

from __future__ import annotations

import streamlit as st

from ui import data, feedback
from ui import schemas as s

REFRESH_S = 2


def _progress_bars(jobs: list[s.Job]) -> None:
    for job in jobs:
        fraction = job.done / job.total if job.total else 0.0
        label = f"job {job.job_id} ({job.corpus}, {job.status}): {job.done}/{job.total} documents"
        st.progress(min(fraction, 1.0), text=label)


def active_jobs_panel(title: str = "Running jobs") -> None:
    """Progress bars of queued and running jobs, redrawn every few seconds while any is active.

    Only this panel reruns (st.fragment), not the page; without active jobs it draws nothing
    and does not poll.
    """
    jobs = feedback.attempt("Reading jobs", data.jobs) or []
    if not any(j.active for j in jobs):
        return

    @st.fragment(run_every=REFRESH_S)
    def panel() -> None:
        current = feedback.attempt("Reading jobs", data.jobs) or []
        active = [j for j in current if j.active]
        if active:
            st.subheader(title)
            _progress_bars(active)
        else:
            st.success("All jobs finished. Reload the page to see their data.")

    panel()
