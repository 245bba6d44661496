"""The report's pages, run by st.navigation in reports/app.py.

Not named `pages/`: Streamlit treats a `pages/` folder beside the entry script as a legacy
multipage app and ignores st.navigation.
"""
