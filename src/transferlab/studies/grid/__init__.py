"""The paper's grid: base nets, treatments BnB/AnB/BnB+/AnB+ (PnB, PnB+) and the random control."""
