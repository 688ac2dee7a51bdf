"""Stands in for ``modules/ui_components.py`` without gradio. Each class keeps its constructor's
arguments (``elem_id``, ``label`` and ``value`` as attributes) and works as a ``with`` block.
``InputAccordion`` is an accordion whose ``value`` says whether it is open; in the WebUI it is a
hidden checkbox driving an accordion, with ids ``<elem_id>`` and ``<elem_id>-checkbox``."""


class _Block:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.elem_id = kwargs.get("elem_id")
        self.label = kwargs.get("label")
        self.value = kwargs["value"] if "value" in kwargs else (args[0] if args else None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FormComponent:
    """Marker of components that sit inside a form row."""


class FormRow(FormComponent, _Block):
    pass


class FormColumn(FormComponent, _Block):
    pass


class FormGroup(FormComponent, _Block):
    pass


class ToolButton(FormComponent, _Block):
    pass


class InputAccordion(_Block):
    global_index = 0

    def __init__(self, value, **kwargs):
        super().__init__(value, **kwargs)
        if self.elem_id is None:
            self.elem_id = f"input-accordion-{InputAccordion.global_index}"
            InputAccordion.global_index += 1
        self.accordion_id = self.elem_id
        self.elem_id = f"{self.accordion_id}-checkbox"

    def extra(self):
        """A block shown in the accordion's title bar."""
        return _Block(elem_id=f"{self.accordion_id}-extra")
