/// The engine's public API is written in the plugin API's types (recipes, plans, errors), so its
/// clients (the CLI, the tests) get them with `import ProvisionCore`. Plugin modules import
/// ProvisionPluginAPI alone and never see the engine.
@_exported import ProvisionPluginAPI
