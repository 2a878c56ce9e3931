"""The built-in answer parsers, registered through the same hook a third-party plugin implements."""

from harness.hookspecs import hookimpl


@hookimpl
def register_answer_parsers(register):
    from harness.answer_parsers.parser import BoxedParser

    register(BoxedParser)
