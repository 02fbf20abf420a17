chmod 700 app
