"""The dashboard: server-rendered pages over stored summaries, reports, alerts and history.

``routes.py`` (the pages at ``/dashboard``) → ``queries.py`` (reads what the monitor and the
log writer stored, never raw prediction records) → ``charts.py`` (SVG drawn on the server) →
``render.py`` (Jinja2 templates, autoescaped). It only reads.
"""
