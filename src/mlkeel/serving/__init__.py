"""The model server: FastAPI app, validation, micro-batching, metrics and hot swap.

A request reads top to bottom: routes.py -> service.py -> schemas.py / validation.py (rows)
-> batching.py -> model_slot.py (predict) -> the answer, then the prediction log.
"""
