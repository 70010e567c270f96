// Stand-in for modules the form code imports only for types (core/api/types/AirbyteClient, core/domain/connector).
export {};
