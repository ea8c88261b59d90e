"""The dashboard's entry point: page setup and navigation (one page per file in pages/).

streamlit run ui/app.py            # or: glamlab ui
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import data

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="GLaM Routing Lab", page_icon=":material/alt_route:", layout="wide")


def _page(file: str, title: str, icon: str, *, default: bool = False) -> st.Page:
    url_path = None if default else file.removesuffix(".py").replace("_", "-")
    return st.Page(PAGES / file, title=title, icon=icon, url_path=url_path, default=default)


navigation = st.navigation(
    {
        "Explore": [
            _page("overview.py", "Overview", ":material/dashboard:", default=True),
            _page("token_explorer.py", "Token explorer", ":material/search:"),
            _page("expert_profile.py", "Expert profile", ":material/person_search:"),
        ],
        "Statistics": [
            _page("load_balance.py", "Load balance", ":material/balance:"),
            _page("specialisation.py", "Specialisation", ":material/category:"),
            _page("compare.py", "Compare", ":material/compare_arrows:"),
            _page("training.py", "Training history", ":material/timeline:"),
        ],
        "Act": [
            _page("experiments.py", "Experiments", ":material/science:"),
            _page("jobs.py", "Jobs", ":material/play_circle:"),
        ],
    }
)
with st.sidebar:
    st.caption(f"API: {data.client().base_url}")
navigation.run()
