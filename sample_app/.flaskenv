# The demo's Flask settings. From the repository root:
#   flask --env-file sample_app/.flaskenv run
# (`make demo` passes --app sample_app itself.) Add TACHES_* settings here too,
# e.g. TACHES_LOCALE=fr for the bundle's French labels.
FLASK_APP=sample_app
