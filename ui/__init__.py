"""The GLaM Routing Lab dashboard: Streamlit pages over the REST API (HTTP only).

    glamlab ui --port 8501            # or: python -m ui.cli --port 8501

`client` talks to the API, `data` caches its reads, `charts` and `tables` turn results into
Altair charts and tables, `tokens` renders escaped coloured token text, `pages/` holds one
Streamlit page per file, and `app` ties them together with st.navigation.
"""
