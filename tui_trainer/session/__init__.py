"""Plain Python shared by a dashboard, a detached trainer and the viewers attached to it.

Nothing here imports Textual or torch: a trainer started in the background and a dashboard
attached from another SSH session or a browser tab both use it.
"""
