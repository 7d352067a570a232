"""Training algorithms, one module each (``ppo``, ``dqn``, ``sac``): ``common`` holds their
contract and the pieces they share, ``registry`` finds an algorithm's module by its name."""
