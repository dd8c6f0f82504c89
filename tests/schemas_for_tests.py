from pydantic import BaseModel


class Invoice(BaseModel):
    number: str
    total: float


NOT_A_MODEL = "just a string"


class UserDetail(BaseModel):
    """A team's own UserDetail, registered in place of the built-in one."""

    name: str
    age: int
    email: str = ""
