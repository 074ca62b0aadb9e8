"""The API of the machine routes (IAM, and the dashboard's JWT API): a module per function,
each holding that function's routes and its own resolver (``FunctionApi``), so a function
serves its routes and no other."""
