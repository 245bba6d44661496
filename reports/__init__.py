"""The Streamlit report: reads the store (writes only human labels) and shows runs side by side."""
