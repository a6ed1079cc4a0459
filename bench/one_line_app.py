import streamlit as st; st.write("hello")  # noqa: E702, I001 (the one-line reference app for first paint)
