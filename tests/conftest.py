"""Settings of the whole suite: the test process runs with the allocator setting of every ``ccr`` process
(``modeling_ccr.allocator``), so that its in-process model work does not pay for page faults either."""

from modeling_ccr.allocator import tune_allocator

tune_allocator()
