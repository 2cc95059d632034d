"""`retrieval serve`: a local web page over an index (type a sentence, see the gallery images it finds).

`app.build_app` makes the FastAPI app; `adapter` is the only module that imports the retrieval library.
Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart); the page ships in ``static/``.
"""
