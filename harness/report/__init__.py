"""Comparison reports (HTML, Markdown, CSV, LaTeX) over one or several finished run directories."""
