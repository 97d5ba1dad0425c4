"""The application around the ``modeling_ccr`` library: the ``ccr`` command line (``cli``), one module per
command, the embedded benchmark's builder (``dataset``), gallery indexes (``index``), the Gradio demo
(``demo``) and Hub publishing (``hub``). The library never imports this package (see ARCHITECTURE.md)."""
