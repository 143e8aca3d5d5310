print("mbms-gateway")
