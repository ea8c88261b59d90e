"""Dashboard pages, one per file; `ui/app.py` runs them as Streamlit scripts.

(A package only so that a wheel ships the page files with the rest of `ui`.)
"""
