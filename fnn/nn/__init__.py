"""fnn.nn: neural-network layers and their functional forms (`fnn.nn.functional`)."""
