"""`fau serve`: a local web page over a checkpoint (drop photos, see faces, AU bars, explanations, attention).

`app.build_app` makes the FastAPI app; `adapter` is the only module that imports the FAU library.
Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart); the page ships in ``static/``.
"""
