"""Jobs: analyse the built-in corpus or an uploaded JSONL in the background; manage runs."""

from __future__ import annotations

import streamlit as st

from ui import data, exports, feedback, filters, live, tables
from ui.client import ApiError

BUILTIN, UPLOAD = "Built-in corpus", "Upload a JSONL"

st.title("Jobs")
st.caption(
    "A job analyses a whole corpus in the background and stores it as one run; the "
    "statistics pages then cover it. Jobs survive an API restart and can be cancelled."
)

st.subheader("Start a job")
source = st.segmented_control("Corpus", [BUILTIN, UPLOAD], default=BUILTIN, key="job_source")
with st.form("start_job"):
    upload = None
    if source == UPLOAD:
        upload = st.file_uploader(
            'JSONL file: one {"text": ..., "domain": ...} object per line',
            type=["jsonl", "json", "txt"],
        )
        split = "validation"
    else:
        split = st.selectbox("Split", ["validation", "train"])
    limit = st.number_input("At most this many documents (0: all)", min_value=0, value=0)
    submitted = st.form_submit_button("Start", type="primary")
if submitted:
    if source == UPLOAD and upload is None:
        st.warning("Choose a JSONL file to upload first.")
    elif source is None:
        st.warning("Pick a corpus first.")
    else:
        job = feedback.attempt(
            "Starting the job",
            data.client().start_job,
            corpus="upload" if source == UPLOAD else "builtin",
            split=split,
            limit=int(limit) or None,
            upload=upload.getvalue() if upload is not None else None,
            filename=upload.name if upload is not None else "upload.jsonl",
        )
        if job is not None:
            data.refresh()
            st.success(f"Job {job.job_id} queued: {job.total} documents.")

live.active_jobs_panel("Progress")

st.subheader("Jobs")
jobs = feedback.need("Listing jobs", data.jobs)
if not jobs:
    st.info("No jobs yet. Start one above: the built-in corpus fills every statistics page.")
else:
    exports.table(
        tables.jobs_table(jobs),
        "jobs",
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)
        },
    )
    active = [j.job_id for j in jobs if j.active]
    if active:
        left, right = st.columns([3, 1])
        to_cancel = left.selectbox("Active job", active, key="cancel_job")
        cancel = right.button(
            "Cancel job", help="Stops after the current chunk; what it stored stays."
        )
        if cancel and feedback.attempt("Cancelling", data.client().cancel_job, to_cancel):
            data.refresh()
            st.rerun()

st.subheader("Stored runs")
runs, more = feedback.need("Listing runs", data.runs)
if not runs:
    st.info("No runs stored yet.")
    st.stop()
exports.table(tables.runs_table(runs), "runs", hide_index=True)
by_id = {run.id: run for run in runs}
left, middle, right = st.columns([2, 1, 1])
run_id = left.selectbox(
    "Run", list(by_id), format_func=lambda r: filters.run_label(by_id[r]), key="manage_run"
)
fmt = middle.radio("Export as", ["csv", "parquet"], horizontal=True, key="export_format")
if middle.button("Prepare export"):
    payload = feedback.attempt("Exporting", data.client().export_run, run_id, fmt)
    if payload is not None:
        middle.download_button(
            f"Download run-{run_id}.{fmt}",
            payload,
            file_name=f"run-{run_id}.{fmt}",
            on_click="ignore",
        )


def _delete(run_id: int) -> None:
    """Button callback: runs before the page, so it may reset the confirmation box."""
    try:
        data.client().delete_run(run_id)
    except ApiError as error:
        st.session_state["delete_outcome"] = ("error", error)
    else:
        data.refresh()
        st.session_state["delete_outcome"] = ("deleted", run_id)
    st.session_state["confirm_delete"] = False


confirm = right.checkbox("Yes, delete it", key="confirm_delete")
right.button("Delete run", disabled=not confirm, on_click=_delete, args=(run_id,))
match st.session_state.pop("delete_outcome", None):
    case ("error", error):
        feedback.show_error("Deleting the run", error)
    case ("deleted", deleted):
        st.success(f"Run {deleted} deleted, with its share of every statistic.")
