//! The exporter helper: timeout, retry with backoff, and the sending queue.
