"""The review console: server-rendered pages at `/console` for reviewers and admins (no JavaScript needed).

`console_router(...)` (routes.py) is all the app registers. Sign-in and sessions are in session.py, CSRF and
origin checks in csrf.py, each page's data in its own module, the HTML in templates/ (Jinja2, autoescaped).
"""
