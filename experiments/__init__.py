"""Studies built on the library, one folder each (a script that trains and evaluates, and the code of
its report).  They import the library; nothing in the library imports them."""
