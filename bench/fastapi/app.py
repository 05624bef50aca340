"""The FastAPI original, written back from its README's contract, the way it
was written: plain `def` handlers, served by uvicorn with one worker. Only
the benchmark runs it."""

import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello_world")
def hello_world():
    return {"message": "Hello World!"}


@app.get("/current_time")
def current_time(name: str):
    return {"timestamp": int(time.time()), "message": f"Hello {name}"}


@app.get("/healthcheck")
def healthcheck():
    return {"status": "ok"}
