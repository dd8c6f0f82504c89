from pydantic import BaseModel


class Invoice(BaseModel):
    number: str
    total: float


NOT_A_MODEL = "just a string"
