"""What every function's HTTP side shares: reading API Gateway's events (``events``), problem
answers (``problems``) and a resolver of one function's own routes (``resolver``)."""
