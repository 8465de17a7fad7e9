"""`roberta-prelayernorm serve`: any trained model of the package over HTTP (FastAPI + uvicorn, the `serve` extra).

    engine.py   loading a model of any task, and the batcher thread that runs every forward
    embed.py    the embedding pipeline (pooled hidden states of any model)
    schemas.py  the routes' request bodies (typed, with one-line errors naming the field)
    app.py      the FastAPI app: routes, admission, errors, the page
    gate.py     the ASGI layer around it: request ids, body limit, API key, per-request logs and metrics
    cli.py      the subcommand

Nothing here is imported by `import roberta_prelayernorm`; fastapi is imported only when the server is built.
"""
