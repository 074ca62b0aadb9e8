"""Approval links: minting them and the pages a person opens from a message (the approvals
function). ``service`` decides, ``routes`` serves the pages, ``pages`` writes their HTML,
``keys`` holds the signing keys, ``schemas`` the minting request."""
