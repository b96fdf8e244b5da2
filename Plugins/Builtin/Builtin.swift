import ProvisionCore
import ProvisionFiles

/// Every step kind that ships with provision.
public let builtinRegistry = PluginRegistry(fileSteps)
