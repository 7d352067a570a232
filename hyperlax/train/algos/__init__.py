"""Training algorithms, one module each (``registry.MODULES`` lists them): ``common`` holds their
contract and the pieces they share, ``registry`` finds an algorithm's module by its name."""
